"""The registry: fleet's shared state in etcd, behind a small key-value port."""
