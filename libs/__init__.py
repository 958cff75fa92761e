"""Code shared by every WhatLead service: seedwork, messaging, persistence, gRPC and runtime plumbing."""
