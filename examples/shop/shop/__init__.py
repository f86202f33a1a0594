"""An example shop's payment service: orders in PostgreSQL, card payments through Stripe and
Adyen's official SDKs, its own metrics and failover switch. Not paystab: a stack to drill."""
