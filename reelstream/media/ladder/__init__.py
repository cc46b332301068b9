"""Per-title ladders: complexity analysis (trial encodes scored with SSIM), the rate–quality
convex hull across resolutions, and the rungs chosen on it."""
