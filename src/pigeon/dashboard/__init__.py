"""Server-rendered web dashboard (deliverability, throughput, connectors): not built yet."""
