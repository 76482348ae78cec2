//! Glance v2 images, following the relative `next` link page by page.

use super::error::{ApiError, ErrorKind, Result};
use super::session::{Req, Session};
use super::wire::glance::{ImagesPage, WImage};
use crate::domain::Image;

pub struct ImageService<'a>(pub &'a Session);

impl ImageService<'_> {
    /// Every image visible to the project (`next` is a path such as
    /// `/v2/images?marker=…`, joined with the endpoint's host and path prefix).
    pub async fn list_images(&self) -> Result<Vec<Image>> {
        let ep = self.0.endpoint("image").await?;
        // The prefix before the version segment (`https://h/image/v2` → `https://h/image`).
        let mut prefix = ep.clone();
        let path = ep.path().trim_end_matches('/');
        let cut = path.rsplit_once('/').map(|(head, _)| head).unwrap_or("");
        prefix.set_path(cut);
        prefix.set_query(None);
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..super::compute::MAX_PAGES {
            let req = match &next {
                None => Req::get("/images"),
                Some(n) => {
                    // Resolved against the endpoint and kept on its host: never
                    // string-pasted, so `@host/...` cannot send the token elsewhere.
                    let url = super::session::resolve_link(&ep, &prefix, n).map_err(|e| {
                        ApiError::new(ErrorKind::InvalidResponse, self.0.cloud_name(), "image", e.to_string())
                    })?;
                    Req::get(url.to_string())
                }
            };
            let (page, _): (ImagesPage, _) = self.0.json("image", req).await?;
            let n = page.images.len();
            out.extend(page.images.into_iter().filter(|i| !i.id.is_empty()).map(WImage::into_domain));
            match page.next {
                Some(nx) if n > 0 && seen.insert(nx.clone()) => next = Some(nx),
                _ => return Ok(out),
            }
        }
        Err(super::compute::endless(self.0, "image", "images"))
    }

    pub async fn get_image(&self, id: &str) -> Result<Image> {
        let (w, _): (WImage, _) = self.0.json("image", Req::get(format!("/images/{id}"))).await?;
        if w.id.is_empty() {
            return Err(ApiError::new(ErrorKind::InvalidResponse, self.0.cloud_name(), "image", "image without id"));
        }
        Ok(w.into_domain())
    }
}
