"""Billing service: tariffs (announced to trip), fare quotes, invoices and payments."""
