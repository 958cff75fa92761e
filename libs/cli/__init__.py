"""`whatlead`: a small command-line client over gRPC for newcomers and operators."""
