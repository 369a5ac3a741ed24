"""discovery: discover agents and algorithms with LLMs, by evolutionary search over sandboxed candidates.

Layers, top to bottom; a module imports only from its own unit or from a layer below it
(tests/unit/test_layers.py reads every import and enforces this):

    app                                   CLI, run orchestration, rendering
    search                                loop, planner, promotion gate, state, strategies
    archive  program  llm  evaluation     SQLite store and views; blocks, patches, prompts; models; scoring
    sandbox                               backends (process, bwrap, docker) and images
    task                                  a task folder: spec, seed, evaluator
    openevolve_task                       an OpenEvolve example folder, read as it is
    domain  config  errors  program.blocks  vocabulary, run options, user errors, EVOLVE blocks
    program.tree                          a candidate's files as a tree, and its one-string listing

`sandboxes/` (installed as discovery._sandboxes) runs inside a sandbox and imports nothing from here.
"""

LAYERS: tuple[tuple[str, ...], ...] = (
    ("app",),
    ("search",),
    ("archive", "program", "llm", "evaluation"),
    ("sandbox",),
    ("task",),
    ("openevolve_task",),
    ("domain", "config", "errors", "program.blocks"),
    ("program.tree",),
)

__version__ = "0.1.0"
