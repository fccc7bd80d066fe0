"""Which tasks share a pipeline call, and how many images a call may hold.

One batched call of n images costs far less than n calls on a GPU. A task's own samples
always go in one call when they fit; when a worker takes the fairest task it also takes
the queued tasks of the same round that could go in the same call (tasks.claim_batch).
Tasks can share a call when everything but the prompt, the negative prompt and the seed
is the same: the model, the size, the steps, the scheduler, the guidance, the LoRA set
and the kind, with what its own key holds (worker/kinds: image-to-image at the same
strength) and the guides' settings (worker/guides: every ControlNet unit's but its picture,
every reference image's). A call's rows carry their own prompt, negative prompt and seed (a generator
per image), so image i of a task still uses seed + i and matches a solo run up to
floating-point noise.

Whether a negative prompt is given at all is part of the key as well: SDXL encodes an
empty negative prompt differently from none (zeros), so a task without one is never put
in a call with tasks that have one.

The number of images per call: DAYDREAM_MAX_BATCH when set; else 1 on a CPU (a batch is
no faster there) and, on a GPU, what the free memory holds at the working memory an
image of that family and size needs (a rough, conservative rule). An out-of-memory error
lowers it for that model and size for the rest of the worker's life (learned)."""
from __future__ import annotations

from dataclasses import dataclass, field

from worker import guides
from worker.kinds import kind_for

# Working memory of one image in one call, per megapixel, fp16 with PyTorch's SDPA
# attention: rough figures on the safe side (activations, the VAE decode of the batch).
WORK_BYTES_PER_MPX = {"sd1": 1.5e9, "sd2": 1.5e9, "sdxl": 2.0e9, "sd3": 2.5e9, "flux": 3.5e9, "chroma": 3.5e9, "zimage": 3.0e9,
                      "flux2": 4.0e9}  # (FLUX.2: klein about FLUX.1's, dev more: a conservative guess)
HEADROOM = 0.75  # share of the free memory a batch may plan to use
MOST_IMAGES = 16  # images per call at most, whatever the memory


def batch_key(task) -> tuple:
    """Tasks with equal keys can share one pipeline call."""
    loras = tuple((str(lora.get("id")), float(lora.get("weight", 1.0))) for lora in (task.loras or []))
    kind = kind_for(task)
    return (task.model, int(task.width), int(task.height), int(task.steps), task.scheduler,
            float(task.guidance), loras, (kind.name, *kind.batch_key(task)), bool(task.negative_prompt),
            bool(getattr(task, "fast", False)),  # fast-mode tasks share calls only with fast-mode tasks (issue 28)
            *guides.batch_key(task))


def can_join(head, task) -> bool:
    return batch_key(head) == batch_key(task)


def memory_batch(free_bytes: float, family: str | None, width: int, height: int) -> int:
    """Images per call that `free_bytes` of GPU memory holds at this size."""
    per_image = WORK_BYTES_PER_MPX.get(family or "sd1", WORK_BYTES_PER_MPX["sd1"]) * max(width * height, 1) / 1e6
    return max(1, min(MOST_IMAGES, int(free_bytes * HEADROOM // per_image)))


@dataclass
class BatchLimits:
    """The images per call for each model and size: the setting or the memory rule,
    lowered by what an out-of-memory error taught."""

    configured: int | None = None  # DAYDREAM_MAX_BATCH
    learned: dict = field(default_factory=dict)  # (model, width, height) -> images that fit

    def limit(self, model: str, width: int, height: int, *, device_type: str,
              free_bytes: float | None = None, family: str | None = None) -> int:
        if self.configured is not None:
            wanted = max(1, int(self.configured))
        elif device_type != "cuda" or free_bytes is None:
            wanted = 1
        else:
            wanted = memory_batch(free_bytes, family, width, height)
        learned = self.learned.get((model, int(width), int(height)))
        return max(1, min(wanted, learned)) if learned else wanted

    def out_of_memory(self, model: str, width: int, height: int, images: int) -> int:
        """A call of `images` ran out of memory: from now on at most half of it."""
        fits = max(1, images // 2)
        key = (model, int(width), int(height))
        self.learned[key] = min(self.learned.get(key, fits), fits)
        return self.learned[key]


def chunks(rows: list, size: int) -> list[list]:
    size = max(1, int(size))
    return [rows[i:i + size] for i in range(0, len(rows), size)]


class Joiner:
    """joins(head, task) for tasks.claim_batch: same key, and the images so far (the
    head's included) within the limit. Called once per candidate, in fair order."""

    def __init__(self, head_images_limit):
        self.limit_of = head_images_limit  # head -> images per call for its model and size
        self.images: int | None = None
        self.limit: int | None = None

    def __call__(self, head, task) -> bool:
        if self.images is None:
            self.images = int(head.samples)
            self.limit = self.limit_of(head)
        if not can_join(head, task) or self.images + int(task.samples) > self.limit:
            return False
        self.images += int(task.samples)
        return True
