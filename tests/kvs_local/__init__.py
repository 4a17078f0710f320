"""kvs-local: a local Kinesis Video Streams compatible HTTP server (stdlib only). See README.md."""
