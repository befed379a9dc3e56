"""cardstorage: a user's saved payment methods (a stand-in for the real card storage)."""
