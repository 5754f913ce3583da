"""The recipe of the bundled tiny agent: its tokenizer corpus (:mod:`.corpus`) and builder (:mod:`.build`)."""
