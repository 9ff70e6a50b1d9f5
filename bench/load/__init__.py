"""chatcore's benchmark and load harness: server control, load workers, scenarios, baseline, reports."""
