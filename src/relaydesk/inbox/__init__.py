"""The team inbox's shared tools: private notes with @mentions, labels and canned answers.

A conversation's state and owner live with the conversation (messaging.states); what a
team writes for itself about a conversation, how it sorts conversations and the answers
it reuses live here.
"""
