"""What the compatibility APIs (views/compat/: AUTOMATIC1111's /sdapi/v1 and OpenAI's
/v1/images) need from the services: their requests in Daydream's terms, and Daydream's
tasks in theirs.

- common.py: models by any of their names, complaints in the client's field names, the
  pictures a request brings (submit_with_picture) and an answer carries (signed links);
- holding.py: holding a request until its task ends, and the caller's running task;
- a1111.py, a1111_options.py: AUTOMATIC1111's fields, samplers, answers and options;
- a1111_controlnet.py: sd-webui-controlnet's units (the task's control and references),
  module and model names, and its /controlnet routes' answers;
- openai.py: the OpenAI Images API's fields (edits by instruction and variations too).

Nothing here knows a request: the views parse, call these, and answer in their API's
shape (views/errors.py). Every picture is an ordinary task made by tasks.submit_task
(validation, cost, queue bounds, fairness, idempotency, the timeline, the gallery)."""
