"""gRPC plumbing shared by every service: server bootstrap, error mapping, client deadlines."""
