"""The stack's own ledgers: the merchant's orders and the PSPs' books, reconciled.

:mod:`.spec` is the ``ledgers:`` model of a stack file; :func:`reconcile_ledgers` reads both
sides and finds double charges, lost payments and orphans by merchant reference.
"""
