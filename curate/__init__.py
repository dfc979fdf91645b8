"""curate: declarative web-crawl curation pipelines on Dask."""

__version__ = "0.1.0"
