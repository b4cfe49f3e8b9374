module local/h2server

go 1.22
