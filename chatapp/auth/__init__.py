"""Who a connection is: token verification (pure) and the keys it needs."""
