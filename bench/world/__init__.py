"""The embedded world: product-review prompts with a known gold reward (``rules``), its tiny reference policy
(``tiny_lm``), and the cached artifact of pairs and held-out material built from them (``build``)."""
