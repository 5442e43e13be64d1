"""The implementation of each verb behind ``labelless.api``: ``pretrain`` (``verbs.pretrain``),
``evaluate``, ``report``, ``prune``, ``finetune``, with what they share: the components a run builds
(``components``), the run's data (``rundata``), the final metrics (``scoring``) and the encoder
and output folder of the evaluation verbs (``targets``). ``labelless semi`` lives in
``labelless.semi.api`` and uses the same pieces."""
