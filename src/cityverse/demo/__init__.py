"""The demo city: a small Moroccan town (Berkane) with its water network, devices and a story.

``city.generate(seed)`` builds every entity from a seed (same seed, same city);
``load`` puts them into a store; ``service.DemoService`` runs the simulated devices and
the story's timeline at the demo clock while the server runs (``cityverse demo``).
"""
