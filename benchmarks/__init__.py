"""paystab's performance suite: each module measures ratios side by side in one run."""
