"""The book's chapters as pipelines and reports, above the shared library.

`compnb` itself holds what several chapters share: data, models, saliency, losses, training, evaluation,
artifact statistics, the attack, reporting helpers and provenance. Each module here serves one chapter
and may import the library and an earlier chapter's module, never the other way round:

- `baseline` (chapter 2): baseline fine-tunes and the artifact-influence analysis;
- `competency`, `competency_report` (chapter 3): the competency-loss sweep and its tables;
- `adversarial_eval`, `adversarial_report` (chapter 4): the attack, retraining and error analysis;
- `ig_variance_eval`, `ig_variance_report` (chapter 5): IG-variance training and its measurements;
- `claims` (chapter 6): the claims ledger;
- `plans`: a chapter's runs as configs for a scheduler (`compnb plan`);
- `reliability`, `faults`, `split_exactness` (chapter 7, appendix): resume, bad-input and fault checks (locks,
  damaged run files, divergence), split-batch exactness, and the book's GPU cost;
- `paper_scale` (appendix): the paper-scale benchmark and the paper profile's projected GPU time.
- `lab_notes` (chapter 9, appendix): the forensics behind the reliability and paper-scale appendices, read back
  from results already written.
"""
