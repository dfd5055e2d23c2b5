"""What models learn and are tested on: the synthetic task world, local benchmark files, the evaluation suite."""
