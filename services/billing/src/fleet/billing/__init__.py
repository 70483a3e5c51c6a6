"""Billing service: tariffs, fare quotes, invoices and payments."""
