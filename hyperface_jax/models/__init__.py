"""Flax Linen models, registered in registry.MODELS by name.

No module is imported here: `registry.MODELS.get(name)` imports every module of this
package on its first miss (registry.py), so a new model module registers by being here.
"""
