"""The RuckusONE client: the only code that knows URLs and field spellings."""
