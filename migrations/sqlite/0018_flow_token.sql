-- A mail's recipient is `<token>@<domain>`: the SMTP receiver finds its flow by the token.
CREATE INDEX flows_webhook_token ON flows (webhook_token);
