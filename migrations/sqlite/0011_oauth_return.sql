-- Where the browser goes back to once an OAuth connect is approved: the page that started
-- it (a flow page binding the new connection to a slot), not always the connections list.
ALTER TABLE oauth_pending ADD COLUMN return_to TEXT;
