"""How WhatLead runs: `local` for `make run`; `kubernetes/` for production manifests."""
