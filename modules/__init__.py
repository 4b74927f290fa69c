"""Business modules: their manifests and business actions."""
