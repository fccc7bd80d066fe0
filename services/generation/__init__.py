"""Generation: the rules of a task's parameters, the models and schedulers it may use,
submit and cancel, the state transitions the worker and the reconciler make, the fair
order of the queue, estimates, and uploads for image-to-image."""
