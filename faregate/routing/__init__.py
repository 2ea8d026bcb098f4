"""Where a request goes: the catalog of public models and the deployments behind them."""
