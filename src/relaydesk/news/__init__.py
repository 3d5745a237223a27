"""News: categories of sources, the scraper and the per-category article files."""
