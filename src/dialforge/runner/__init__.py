"""Running a whole config: the checkpoint store, the scheduler, progress, and the commands built on them."""
