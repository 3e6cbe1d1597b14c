module cassava.local/problemdetails

go 1.22
