"""The customer–product–offer graph: build (nodes, edges, leak-free split), sampling, and its datamodule."""
