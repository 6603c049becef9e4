"""A/B splits: experiments, weight changes and their approvals, ELBv2 weights, the guard."""
