"""Every lake table's declaration, one module per area."""
