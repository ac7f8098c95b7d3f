"""Sources at URLs (http(s)://, s3:// and other fsspec protocols)."""
