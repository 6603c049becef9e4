"""Model monitoring: the reference profile kept with each run, the check loop, incidents."""
