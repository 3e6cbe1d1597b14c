module cassava.local/requestid

go 1.22
