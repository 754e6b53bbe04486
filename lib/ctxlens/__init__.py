"""ctxlens: see what contextual language models (ELMo, BERT, GPT) do with a sentence.

The library never imports streamlit: every number and figure the app shows comes from here.
"""

__version__ = "0.1.0"
