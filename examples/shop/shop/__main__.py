"""``python -m shop``: run the shop until SIGTERM or Ctrl-C (settings: shop/config.py)."""

from shop.app import main

main()
