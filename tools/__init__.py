"""Developer tools that are not shipped with the package: the recipes that build its bundled assets."""
