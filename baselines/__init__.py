"""The baseline pruners: one file per method, each written exactly as a user's submission.

Every module here is imported on the first registry lookup, and the Pruner subclasses it
defines are registered under their `name`; a new file needs no edit anywhere else.
"""
