"""Notebook front ends: the IPython magics (:mod:`.magics`) and the ipywidgets panels
(:mod:`.widgets`). They use only the public API of the layers below. Nothing is imported
here, so ``import natsbook`` stays light; ``%load_ext natsbook`` loads the magics."""
