"""The public live-tracking page: links, snapshots, the hub that streams changes to open pages."""
