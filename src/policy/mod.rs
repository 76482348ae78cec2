//! Policy model (deploy, scaling, recovery, backup), strict TOML loading, validation.
