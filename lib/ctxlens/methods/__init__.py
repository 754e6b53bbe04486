"""Every analysis a page shows, one module per method family, each registered by name in
`methods.registry` with the capabilities it needs. Methods read a record's activations where
they live (the device) or run the forwards they need, and return small numpy results;
`analysis/` holds the pure definitions they are tested against.

Importing the package registers every method.
"""

from . import (  # noqa: F401 - registration
    ablation,
    attention,
    attribution,
    corpus,
    corruption,
    crosscheck,
    crosslingual,
    few_shot,
    layer_story,
    fill_mask,
    logit_lens,
    neurons,
    next_token,
    permutation,
    probes,
    qa,
    sense,
    sentence_order,
    similarity,
    task_heads,
    vectors,
)
