"""Generation: the rules of a task's parameters (params.py), model families and cards,
the catalog of models and the models folder, LoRAs in prompts, schedulers; tasks
(tasks.py: submit, cancel, and every state move and refund of a task, the one place a
task ends), the fair order of the queue (dispatch.py), estimates, uploads for
image-to-image, the live queue staff see (monitor.py), and the translation of the
compatibility APIs (compat/)."""
