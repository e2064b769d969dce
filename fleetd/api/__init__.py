"""fleetd's HTTP API v1: wire schema (pure), request handlers (over the Registry) and the server.

Only `fleetd.api.http` imports aiohttp; `schema` is shared with fleetctl.
"""
