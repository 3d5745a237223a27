"""Long operations (scraping, index builds, syncs) as jobs whose progress anyone can read."""
