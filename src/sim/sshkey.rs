//! SSH key texts for the simulated Nova key pairs: the MD5 fingerprint Nova
//! shows (`ssh-keygen -l -E md5`), and generated `ssh-ed25519` key pairs that look
//! like OpenSSH's. The key material is random bytes, not a real curve point: the
//! simulator never signs anything, and no crypto crate comes in for it.

use base64::Engine as _;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// MD5 (RFC 1321), only for fingerprints.
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14,
        20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6,
        10, 15, 21,
    ];
    let k: [u32; 64] = std::array::from_fn(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32);
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_le_bytes());
    let mut h: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for chunk in msg.chunks_exact(64) {
        let m: Vec<u32> = chunk.chunks_exact(4).map(|w| u32::from_le_bytes(w.try_into().unwrap_or([0; 4]))).collect();
        let [mut a, mut b, mut c, mut d] = h;
        for (i, (&shift, &ki)) in S.iter().zip(k.iter()).enumerate() {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(ki).wrapping_add(m.get(g).copied().unwrap_or(0));
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(shift));
        }
        let [h0, h1, h2, h3] = h;
        h = [h0.wrapping_add(a), h1.wrapping_add(b), h2.wrapping_add(c), h3.wrapping_add(d)];
    }
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(h.iter().flat_map(|w| w.to_le_bytes())) {
        *o = b;
    }
    out
}

/// Nova's fingerprint of an OpenSSH public key line: MD5 of the decoded key blob,
/// colon-separated hex. `None` when the text is not `<type> <base64> [comment]`.
pub fn fingerprint(public_key: &str) -> Option<String> {
    let mut parts = public_key.split_whitespace();
    let kind = parts.next()?;
    let blob = B64.decode(parts.next()?).ok()?;
    // The blob starts with the key type as an SSH string.
    let n = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    if blob.get(4..4usize.checked_add(n)?)? != kind.as_bytes() {
        return None;
    }
    Some(md5(&blob).iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
}

fn ssh_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn ed25519_blob(public: &[u8; 32]) -> Vec<u8> {
    let mut blob = Vec::new();
    ssh_string(&mut blob, b"ssh-ed25519");
    ssh_string(&mut blob, public);
    blob
}

/// A key pair as `ssh-keygen -t ed25519` writes it: (public line, private PEM).
pub fn generate(comment: &str) -> (String, String) {
    let mut seed = [0u8; 32];
    let mut public = [0u8; 32];
    seed.iter_mut().chain(public.iter_mut()).for_each(|b| *b = fastrand::u8(..));
    let blob = ed25519_blob(&public);
    let check = fastrand::u32(..).to_be_bytes();
    let mut private = Vec::new();
    private.extend_from_slice(&check);
    private.extend_from_slice(&check);
    ssh_string(&mut private, b"ssh-ed25519");
    ssh_string(&mut private, &public);
    ssh_string(&mut private, &[seed, public].concat());
    ssh_string(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut body = b"openssh-key-v1\0".to_vec();
    ssh_string(&mut body, b"none");
    ssh_string(&mut body, b"none");
    ssh_string(&mut body, b"");
    body.extend_from_slice(&1u32.to_be_bytes());
    ssh_string(&mut body, &blob);
    ssh_string(&mut body, &private);
    let b64 = B64.encode(&body);
    let lines: Vec<String> = b64.as_bytes().chunks(70).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    let pem = format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n", lines.join("\n"));
    (format!("ssh-ed25519 {} {comment}", B64.encode(&blob)), pem)
}

/// A stable public key for a key pair named in a world file.
pub fn seeded_public_key(name: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("keypair:{name}").as_bytes());
    let mut public = [0u8; 32];
    public.copy_from_slice(&d);
    format!("ssh-ed25519 {} {name}@stackpilot", B64.encode(ed25519_blob(&public)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_and_fingerprints_match_the_reference_tools() {
        let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(md5(b"The quick brown fox jumps over the lazy dog")), "9e107d9d372bb6826bd81d3542a419d6");
        // A key real Nova answered with this fingerprint.
        let k = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHwkvdX2m+vlkH24/EDUgmnE+WnD98wGVAW3qI9GFoWQ";
        assert_eq!(fingerprint(k).as_deref(), Some("6f:f8:06:b4:42:32:f6:3a:ba:ae:66:95:cd:77:76:7a"));
        assert_eq!(fingerprint("ssh-rsa not-base64"), None);
        let (public, private) = generate("me");
        assert!(fingerprint(&public).is_some(), "{public}");
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
    }
}
