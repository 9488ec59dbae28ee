"""Sample-quality metrics: FID, KID, IS, precision/recall, 2-D mode coverage, paired image quality."""
